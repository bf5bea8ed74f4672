"""Evidence sets: measured transfers per transfer model and protocol, imported and served."""
