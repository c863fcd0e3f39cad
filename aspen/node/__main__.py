from aspen.node.main import main

main()
