"""The keyboard: whole-word suggestions for the word being typed, and the typist simulation that
scores them (docs/keystroke-savings.md)."""
