"""Transfer experiments: fine-tune on source tasks, then the target, against its baseline."""
