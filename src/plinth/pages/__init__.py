"""Pages: the component model, page validation, compile targets and the end-user portal."""
