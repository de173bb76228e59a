"""Layer inputs that must not give silent garbage."""

import numpy as np
import tensorflow as tf

from keras_gae import layers


class RunningStatisticsTest(tf.test.TestCase):
    def test_nan_batch_does_not_poison_the_running_statistics(self):
        layer = layers.AdvantageNormalization(momentum=0.9)
        clean = tf.constant([[1.0, 2.0, 3.0, 6.0]])
        layer(clean, training=True)
        mean, variance, count = (
            float(layer.moving_mean),
            float(layer.moving_variance),
            float(layer.count),
        )
        broken = tf.constant([[1.0, np.nan, 3.0, 6.0]])
        outputs = layer(broken, training=True)
        self.assertFalse(np.all(np.isfinite(outputs)))
        self.assertEqual(float(layer.moving_mean), mean)
        self.assertEqual(float(layer.moving_variance), variance)
        self.assertEqual(float(layer.count), count)
        # The next clean batch is normalized with finite statistics and
        # blends into them as if the broken one never came.
        outputs = layer(clean, training=True)
        self.assertTrue(np.all(np.isfinite(outputs)))
        self.assertAllClose(
            float(layer.moving_mean), 0.9 * mean + 0.1 * 3.0, rtol=1e-6
        )
        self.assertEqual(float(layer.count), count + 1)
