"""Source selection: ranking metrics, ranking methods (similarity, baselines, learned) and their
leave-one-target-out evaluation against measured transfers."""
