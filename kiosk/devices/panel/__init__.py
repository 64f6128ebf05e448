"""The front panel: four buttons, three LEDs and a buzzer (gpiozero), the 20 x 4 LCD, its screens."""
