"""What leaves the box: signed documents, the outbox they wait in, and the uploader that sends them."""
