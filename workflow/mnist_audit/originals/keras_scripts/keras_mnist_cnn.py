# The program of Keras's example "Trains a simple convnet on the MNIST dataset" (fchollet;
# keras-team/keras, examples/mnist_cnn.py, MIT License; read at its last change, commit
# 4f2e65c385d6 of 2018-02-22, before the examples' removal on 2020-10-20). Its docstring
# claims: "Gets to 99.25% test accuracy after 12 epochs (there is still a lot of margin for
# parameter tuning). 16 seconds per epoch on a GRID K520 GPU." Its statements in its order,
# restated for this project (SPEC section 5: the public originals are read for facts; the
# project writes its own code). mnist_audit.originals.scripts runs it with runpy,
# mnist.load_data serving the prepared split; any copy of the author's own file runs the same
# way (mnist-audit original --script PATH). Written for Keras 2, where Adadelta() meant
# learning rate 1.0: the registry's default recipe runs it with Keras 2's Adadelta defaults
# restored (keras_defaults), variant as_written on today's Keras (learning rate 0.001).
from __future__ import print_function
import keras
from keras.datasets import mnist
from keras.models import Sequential
from keras.layers import Dense, Dropout, Flatten
from keras.layers import Conv2D, MaxPooling2D
from keras import backend as K

batch_size = 128
num_classes = 10
epochs = 12

# image size
img_rows, img_cols = 28, 28

# MNIST's 60,000 training and 10,000 test images
(x_train, y_train), (x_test, y_test) = mnist.load_data()

# one channel axis, where the backend's image format puts it
if K.image_data_format() == 'channels_first':
    x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
    x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
    input_shape = (1, img_rows, img_cols)
else:
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)

# pixels scaled to [0, 1]
x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print('x_train shape:', x_train.shape)
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

# labels as one-hot rows
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3),
                 activation='relu',
                 input_shape=input_shape))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation='softmax'))

model.compile(loss=keras.losses.categorical_crossentropy,
              optimizer=keras.optimizers.Adadelta(),
              metrics=['accuracy'])

# the test set is fit's validation data: its loss and accuracy print after every epoch
model.fit(x_train, y_train,
          batch_size=batch_size,
          epochs=epochs,
          verbose=1,
          validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
