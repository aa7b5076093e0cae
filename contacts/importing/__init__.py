"""CSV/TSV/XLSX import: detection, column mapping, preview and the bulk load."""
