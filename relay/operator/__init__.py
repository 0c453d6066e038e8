"""The operator surface on the admin port: its guard, the API's functions and routes."""
