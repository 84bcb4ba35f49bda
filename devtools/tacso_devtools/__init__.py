"""Local development tools: the stack runner, the mail catcher and the demo."""
