"""The replicator's Azure Functions app (Python v2 programming model): a replication timer, a status
timer, a restore drill timer and a queue trigger, all thin over replicator.fleet.functions_entry.
Deployment: docs/functions.md."""

import azure.functions as func

from replicator.fleet import functions_entry

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="%REPLICATOR_SCHEDULE%", run_on_startup=False)
async def replicate_timer(timer: func.TimerRequest) -> None:
    """Every tick: replicate the configured disks, or fan them out on the queue."""
    await functions_entry.on_timer(timer)


@app.timer_trigger(arg_name="timer", schedule="%REPLICATOR_STATUS_SCHEDULE%", run_on_startup=False)
async def status_timer(timer: func.TimerRequest) -> None:
    """Every tick: how current is each replica (`replicate status`); fails unless every one is fresh."""
    await functions_entry.on_status_timer(timer)


@app.timer_trigger(arg_name="timer", schedule="%REPLICATOR_DRILL_SCHEDULE%", run_on_startup=False)
async def drill_timer(timer: func.TimerRequest) -> None:
    """Every tick (e.g. weekly): a restore drill of every target; fails unless every drill passed."""
    await functions_entry.on_drill_timer(timer)


@app.queue_trigger(arg_name="message", queue_name="%REPLICATOR_QUEUE_NAME%", connection="REPLICATOR_QUEUE")
async def replicate_job(message: func.QueueMessage) -> None:
    """One queued job: replicate one source into its target."""
    await functions_entry.on_queue_message(message)
