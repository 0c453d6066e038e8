"""Redis high availability: Sentinel, replica acknowledgement, masters killed under load."""
