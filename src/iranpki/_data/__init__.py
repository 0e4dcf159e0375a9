"""Package data: the profiles and policies, mapped from the checkout's top-level folders."""
