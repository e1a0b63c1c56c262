"""CLI sub-commands, one module each (see ``humansd_core.cli``)."""
