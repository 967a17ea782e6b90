# The program of TensorFlow's "TensorFlow 2 quickstart for beginners" (The TensorFlow
# Authors; tensorflow/docs, site/en/tutorials/quickstart/beginner.ipynb, Apache License
# 2.0; at commit e865955a3e30): the notebook's code cells in their order, restated for this
# project (SPEC section 5: the public originals are read for facts; the project writes its
# own code). mnist_audit.originals.scripts runs it with runpy, keras.datasets.mnist.load_data
# serving the prepared split (tf.keras is Keras 3 itself with TensorFlow 2.21).
import tensorflow as tf

print("TensorFlow version:", tf.__version__)

# the data: pixels divided by 255.0 (float64)
mnist = tf.keras.datasets.mnist
(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

# the model: 10 logits per image
model = tf.keras.models.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(128, activation="relu"),
    tf.keras.layers.Dropout(0.2),
    tf.keras.layers.Dense(10),
])

# the untrained model on one image, its softmax, and the loss of it
predictions = model(x_train[:1]).numpy()
print(predictions)
print(tf.nn.softmax(predictions).numpy())
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
print(loss_fn(y_train[:1], predictions).numpy())

model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
model.fit(x_train, y_train, epochs=5)
model.evaluate(x_test, y_test, verbose=2)

# the trained model with a softmax on top, on five test images
probability_model = tf.keras.Sequential([model, tf.keras.layers.Softmax()])
print(probability_model(x_test[:5]))
