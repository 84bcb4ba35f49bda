"""What the TACSO services truly share: envelope, contracts, topology, outbox, consumers, config, auth."""
