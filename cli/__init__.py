"""The `ds` command line: argument parsing and presentation only (installed as objstore_cli)."""
