"""The order fulfilment demo: the shipped definition and simulated participants."""
