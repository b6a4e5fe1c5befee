"""The `drs-inventory` command group: global options, the shared context, exit statuses."""

from __future__ import annotations

import os
import sys

import click

from scripts.cli.client import DEFAULT_PROJECT, ENVIRONMENTS, Target, resolve_target
from scripts.cli.context import Console, pass_console
from scripts.cli.errors import EXIT_USAGE, ConsoleError
from scripts.cli.output import OUTPUTS, Output

DEFAULT_ENV = "qa"

HELP = f"""The operator's console for the DRS source-server inventory.

\b
It invokes the deployed functions: the data-management-handler (sync, accounts) and the
read-only query-handler (status, servers, summary, report), in AWS through Lambda's Invoke
API (boto3's credential chain, --profile, --region), or on the embedded local AWS through
the local runner (--local, or an AWS_ENDPOINT_URL / --endpoint-url on 127.0.0.1).

\b
Exit statuses:
  0  done
  1  the operation failed: the function refused or failed (its error is shown),
     a sync FAILED, a confirmation declined
  2  usage error (bad option or value)
  3  the deployment cannot be reached: not deployed for --env/--region/--project-name,
     endpoint unreachable, no credentials
  4  the sync ran but is incomplete: PARTIAL (failed or held scopes) or SKIPPED
     (another sync holds the lease)

The environment defaults to $DRS_INVENTORY_ENV, else {DEFAULT_ENV}.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--env",
    type=click.Choice(ENVIRONMENTS),
    default=lambda: os.environ.get("DRS_INVENTORY_ENV", DEFAULT_ENV),
    show_default="$DRS_INVENTORY_ENV or qa",
    help="the deployment's Environment",
)
@click.option("--profile", help="AWS profile (not used with --local)")
@click.option("--region", help="the region the functions are deployed in")
@click.option(
    "--project-name", default=DEFAULT_PROJECT, show_default=True, help="the ProjectName deployed"
)
@click.option(
    "--output", "output_format", type=click.Choice(OUTPUTS), default="table", show_default=True
)
@click.option("--query", help="JMESPath expression applied to the JSON answer")
@click.option("--local", is_flag=True, help="the embedded local AWS (see `local up`)")
@click.option("--endpoint-url", help="AWS endpoint; one on 127.0.0.1 means the local AWS")
@click.option("--drs-endpoint-url", help="the local DRS simulator (default AWS_ENDPOINT_URL_DRS)")
@click.version_option("0.1.0", prog_name="drs-inventory")
@click.pass_context
def cli(
    ctx: click.Context,
    env: str,
    profile: str | None,
    region: str | None,
    project_name: str,
    output_format: str,
    query: str | None,
    local: bool,
    endpoint_url: str | None,
    drs_endpoint_url: str | None,
) -> None:
    if env not in ENVIRONMENTS:  # a bad DRS_INVENTORY_ENV escapes click's Choice check
        raise click.BadParameter(
            f"{env!r} is not one of {', '.join(ENVIRONMENTS)}", param_hint="--env"
        )
    if ctx.resilient_parsing or ctx.invoked_subcommand in (None, "local"):
        # `local` manages the stack itself: it needs no deployment to talk to.
        target = Target(env, project_name, region, profile, local, endpoint_url, drs_endpoint_url)
    else:
        target = resolve_target(
            env=env,
            project=project_name,
            region=region,
            profile=profile,
            local=local,
            endpoint_url=endpoint_url,
            drs_endpoint_url=drs_endpoint_url,
        )
    console = Console(target, Output(output_format, query))
    ctx.obj = console
    ctx.call_on_close(console.close)


def _register() -> None:
    from scripts.cli import (
        account_commands,
        local_commands,
        report_commands,
        server_commands,
        status_commands,
        sync_commands,
    )

    for module in (
        sync_commands,
        status_commands,
        server_commands,
        account_commands,
        report_commands,
        local_commands,
    ):
        module.register(cli)


_register()


# Global options that may also come after the command, as with the AWS CLI. `--region` is not
# among them: after `status` or `servers list` it is the region filter.
_HOISTED_VALUE = ("--env", "--profile", "--project-name", "--output", "--query",
                  "--endpoint-url", "--drs-endpoint-url")  # fmt: skip
_HOISTED_FLAG = ("--local",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """argv with the global options found after the command moved before it."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest += argv[index:]
            break
        name = arg.split("=", 1)[0]
        if arg in _HOISTED_FLAG or (name in _HOISTED_VALUE and "=" in arg):
            front.append(arg)
        elif arg in _HOISTED_VALUE and index + 1 < len(argv):
            front += argv[index : index + 2]
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point (exits with the statuses in HELP)."""
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="drs-inventory", standalone_mode=True)
    except ConsoleError as exc:  # raised while closing: standalone mode did not see it
        exc.show()
        sys.exit(exc.exit_code)


__all__ = ["EXIT_USAGE", "Console", "cli", "main", "pass_console"]
