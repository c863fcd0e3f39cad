from aspen.cli.main import main

main()
