"""`python -m service.outbox`: a standalone relay, as `payments relay`."""

from service.outbox.cli import relay_command

relay_command(prog_name="python -m service.outbox")
