"""The iranpki command."""
