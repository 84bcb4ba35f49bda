from tacso_events.cli import main

main()
