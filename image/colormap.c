/* Viridis by linear interpolation between samples at 0, 0.1, ..., 1. */
#include "image/colormap.h"

static const uint8_t stops[11][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x24, 0x75}, {0x41, 0x44, 0x87}, {0x35, 0x5f, 0x8d},
    {0x2a, 0x78, 0x8e}, {0x21, 0x91, 0x8c}, {0x22, 0xa8, 0x84}, {0x44, 0xbf, 0x70},
    {0x7a, 0xd1, 0x51}, {0xbd, 0xdf, 0x26}, {0xfd, 0xe7, 0x25},
};

void me_viridis(float v, uint8_t rgb[3])
{
    if (!(v > 0)) v = 0;   /* also catches NaN */
    if (v > 1) v = 1;
    float s = v * 10;
    int i = (int)s;
    if (i > 9) i = 9;
    float f = s - (float)i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]) + 0.5f);
}
