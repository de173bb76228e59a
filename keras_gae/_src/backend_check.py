"""The Keras backend check, in plain Python (no Keras, no TensorFlow)."""


def check_backend_name(backend: str) -> None:
    """Raises ImportError unless `backend` is "tensorflow"."""
    if backend != "tensorflow":
        raise ImportError(
            "keras_gae runs on Keras' TensorFlow backend (its training step "
            "uses tf.scan, tf.distribute and tf-agents), but Keras is set "
            f"to the {backend!r} backend. Set the environment variable "
            "KERAS_BACKEND=tensorflow before Keras is first imported. "
            f"Received: KERAS_BACKEND={backend!r}"
        )
