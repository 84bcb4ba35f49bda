"""What the TACSO services share: envelope, contracts, topology, outbox, consumers, config, auth."""
