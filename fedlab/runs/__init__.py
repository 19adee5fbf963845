"""The run folder: file names, figures, ``summary.json``, provenance, the resume guard."""
