"""One module per ``vmapcheck`` subcommand; each exposes ``command``."""
