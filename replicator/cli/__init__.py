"""The command-line shell: parsing, dispatch, printing, exit codes; no replication logic."""
