"""Passwords, the token pair, and (later) SMS codes, rate limits and OAuth."""
