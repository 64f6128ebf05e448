"""The front panel: four buttons, three LEDs, a buzzer (gpiozero), the 20 x 4 LCD, its screens."""
