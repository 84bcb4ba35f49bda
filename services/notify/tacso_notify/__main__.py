from tacso_notify.cli import main

main()
