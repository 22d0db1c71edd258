"""Layer 8, course: doctor, check-course, bench and the exercise checks."""
