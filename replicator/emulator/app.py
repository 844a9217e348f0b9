"""Builds the aiohttp application: ARM routes (routes/arm.py) and the blob data plane (routes/blob.py)
on one port."""

from __future__ import annotations

import functools

from aiohttp import web

from replicator.emulator.middleware import arm_faults, clock, control, entra, faults, linkmodel
from replicator.emulator.routes import arm as arm_routes
from replicator.emulator.routes import blob as blob_routes
from replicator.emulator.routes.context import EmulatorContext

ACCOUNTS_PATH = "/_emulator/accounts"
"""PUT `{"account": NAME, "premium": true|false[, "snapshot_interval_seconds": S]}` makes an account a
premium page-blob account or a standard one again; GET lists the premium ones (blob/accounts.py)."""


def build_app(ctx: EmulatorContext) -> web.Application:
    """ARM first (its paths start with /subscriptions/), then the path-style blob plane as catch-all."""
    app = web.Application(client_max_size=8 * 1024 * 1024)  # a Put Page body is at most 4 MiB
    arm_clock = ctx.clock
    arm_fault_plan = arm_faults.ArmFaultPlan()
    arm_routes.add_routes(app, ctx, arm_clock, arm_fault_plan)
    blob_routes.add_routes(app, ctx)
    clock.install(app, arm_clock, ctx.access_token)  # before the link model (it 404s other /_emulator/ paths)
    arm_faults.install(app, arm_fault_plan, ctx.access_token)  # likewise
    accounts = ctx.accounts  # premium page-blob accounts (blob/accounts.py): control, tier limits
    app.middlewares.append(control.route(ACCOUNTS_PATH, ctx.access_token, accounts.as_json, accounts.updated))
    tier_limits = functools.partial(accounts.tier_limits, size_of=ctx.blobs.existing_size)
    linkmodel.install(app, ctx.options.link, ctx.access_token, tier_limits)
    faults.install(app, ctx.options.faults, ctx.access_token)
    entra.install(app, ctx.entra, ctx.secrets.identity_header, ctx.access_token)  # outermost: never faulted
    return app
