"""Dead letters: finding them, reading them, and putting them back after a fix."""
