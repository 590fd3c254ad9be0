from reproflake.cli import main

# The name, not "python -m reproflake": usage lines and shell completion's variable
# (_REPROFLAKE_COMPLETE) are the same however reproflake is started.
main(prog_name="reproflake")
