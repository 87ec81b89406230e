"""One module per part of the contract."""
