/* colormap.h — a perceptually uniform colour scale for heatmaps: viridis
   (dark purple → blue → green → yellow), as a piecewise-linear curve through
   eleven evenly spaced samples of matplotlib's viridis, which keeps lightness
   monotonic and is readable in grayscale and by colour-blind readers. */
#ifndef MOEDIT_IMAGE_COLORMAP_H
#define MOEDIT_IMAGE_COLORMAP_H

#include <stdint.h>

/* Colour of v in [0, 1] (clamped; NaN maps to 0). */
void me_viridis(float v, uint8_t rgb[3]);

#endif
