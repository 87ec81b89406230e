"""The participant's consent: the pure model and the receipts the hub signs."""
