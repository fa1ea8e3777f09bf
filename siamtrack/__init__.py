"""One command, ``siamtrack``, in front of every stage's entry point."""
