"""Keras model builders for images: ``(input_shape, num_classes) -> tf.keras.Model``."""
