"""Sentiment: labelled tables, many-to-one classifier training, `classify` and its inputs, and the
classifier figures (accuracy, macro-F1, confusion matrix, binary accuracy)."""
