from tacso_registry.cli import main

main()
