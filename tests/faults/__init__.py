"""The fault suite of issue 3: a real fan-out under one injected fault per case."""
