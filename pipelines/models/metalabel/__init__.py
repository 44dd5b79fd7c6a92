"""The meta-labeler: calibrated P(win) of each arm's trade, used to filter entries."""
