"""The CEC's tools, apart from the box's services: ballot printing (whose renderer the scanner also uses
for its print references, so the reference is the paper exactly) and logic-and-accuracy test decks."""
