"""Entrypoints: the Streamlit app (app/main.py and its helpers) and the `mentorship` command line (app/cli)."""
