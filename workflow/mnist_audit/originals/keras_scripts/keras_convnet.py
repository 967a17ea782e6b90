# The program of Keras's code example "Simple MNIST convnet" (fchollet; keras-team/keras-io,
# examples/vision/mnist_convnet.py, Apache License 2.0; read at commit 02cfe8063b50): its
# statements in its order, restated for this project (SPEC section 5: the public originals
# are read for facts; the project writes its own code). mnist_audit.originals.scripts runs
# it with runpy, keras.datasets.mnist.load_data serving the prepared split; any copy of the
# author's own file runs the same way (mnist-audit original --script PATH).
import numpy as np
import keras
from keras import layers

num_classes = 10
input_shape = (28, 28, 1)

# MNIST's 60,000 training and 10,000 test images, pixels scaled to [0, 1], shape (28, 28, 1)
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

# labels as one-hot rows
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
model.summary()

batch_size = 128
epochs = 15
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
# the last 10% of the training arrays validate (Keras slices them off before shuffling)
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
