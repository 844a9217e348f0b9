"""Builds the aiohttp application: ARM routes (routes/arm.py) and the blob data plane (routes/blob.py)
on one port."""

from __future__ import annotations

from aiohttp import web

from replicator.emulator.middleware import arm_faults, clock, entra, faults, linkmodel
from replicator.emulator.routes import arm as arm_routes
from replicator.emulator.routes import blob as blob_routes
from replicator.emulator.routes.context import EmulatorContext


def build_app(ctx: EmulatorContext) -> web.Application:
    """ARM first (its paths start with /subscriptions/), then the path-style blob plane as catch-all."""
    app = web.Application(client_max_size=8 * 1024 * 1024)  # a Put Page body is at most 4 MiB
    arm_clock = ctx.clock
    arm_fault_plan = arm_faults.ArmFaultPlan()
    arm_routes.add_routes(app, ctx, arm_clock, arm_fault_plan)
    blob_routes.add_routes(app, ctx)
    clock.install(app, arm_clock, ctx.access_token)  # before the link model (it 404s other /_emulator/ paths)
    arm_faults.install(app, arm_fault_plan, ctx.access_token)  # likewise
    linkmodel.install(app, ctx.options.link, ctx.access_token)
    faults.install(app, ctx.options.faults, ctx.access_token)
    entra.install(app, ctx.entra, ctx.secrets.identity_header, ctx.access_token)  # outermost: never faulted
    return app
