"""Weekly cost reports by e-mail."""
