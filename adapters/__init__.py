"""Chat platform adapters: each turns one platform's events into core commands and back."""
