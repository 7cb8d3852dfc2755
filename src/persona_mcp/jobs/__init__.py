"""Background jobs that keep the server tidy on their own."""
