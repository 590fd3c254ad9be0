from reproflake.cli import main

main()
