"""Training the served models on the user's own videos."""
