from stage1_5.cli import main

main()
